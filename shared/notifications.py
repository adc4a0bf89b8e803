"""The notification channels: the alerts service delivers through each, the operations board shows each."""

CHANNELS = ("email", "webhook", "grafana")  # notifications.channel (migration 0004) allows these
