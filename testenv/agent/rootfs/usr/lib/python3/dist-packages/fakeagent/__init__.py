"""Stand-ins of a DC/OS agent's systemd, docker and mesos-agent for calico-rollout tests."""
