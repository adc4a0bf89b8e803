"""The Grafana boards and Prometheus rules, generated from code and deploy/targets.yaml (`dvc grafana`)."""
