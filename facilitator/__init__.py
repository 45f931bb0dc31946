"""The facilitator: public REST API, client events, the validators' endpoint (DESIGN.md §1)."""
