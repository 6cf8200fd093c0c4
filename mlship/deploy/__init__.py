"""Deploy runtimes: what runs a version in a rollout slot (plugins in mlship.runtimes.v1)."""
