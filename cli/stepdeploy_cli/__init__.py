"""The ``stepdeploy`` operator command: deploy, watch, inspect and roll back over the deploy state machine."""
