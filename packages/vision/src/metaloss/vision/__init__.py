"""metaloss-vision."""
