"""The app that establishes webhooks and keeps the events Asana delivers."""
