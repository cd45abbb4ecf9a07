"""The fleet control plane: a registry of bundles, policies, devices and groups; rollouts gated on
measured model quality; an HTTP API and a dashboard. Torch-free."""
