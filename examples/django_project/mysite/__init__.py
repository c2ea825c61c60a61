"""An example Django site receiving Asana webhooks."""
