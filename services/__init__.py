"""Services: the notifier and the API (Slack paging and acknowledgements, issue 5)."""
