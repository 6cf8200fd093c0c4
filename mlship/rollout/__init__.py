"""Staged rollouts: state, analysis gates and routers (nginx, SageMaker)."""
