"""Small pure tensor functions shared by assigners, heads and analysis: box geometry and input checks."""
