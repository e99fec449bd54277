"""Public views: the attendee checkout pages and Stripe's webhook endpoint."""
