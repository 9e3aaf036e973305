"""Delivery: the durable outbox and the notification channels. Beneath both alerting
(pages about incidents) and remediations (notices of the plan's steps)."""
