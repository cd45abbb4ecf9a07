"""The device agent: talks to the control plane over MQTT, installs verified bundles with an atomic
swap and a probe-set check, reports aggregated telemetry. Device side: no torch, no transformers."""
