"""Billing for a small shop: charge an order's customer, then email the receipt."""
