"""What two or more services share: config, models, streams, instruments, security."""
