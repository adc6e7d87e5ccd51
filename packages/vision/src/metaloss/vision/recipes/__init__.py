"""Runnable experiments registered under metaloss.recipes."""
