"""Provider webhooks: signature verification per sender kind, and the delivery store."""
