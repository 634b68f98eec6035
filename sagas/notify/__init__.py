"""The notifier: approvers told of ``approval_requested`` through each tenant's channels."""
