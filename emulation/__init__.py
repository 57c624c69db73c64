"""The netns emulator for containerlab topologies: deploys a `*.clab.yml` on network namespaces
where no container engine runs, and drives traffic generation and QoS verification (`csmm-lab`)."""
