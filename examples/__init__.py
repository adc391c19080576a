"""Example host apps for flask-livekit-onboarding (not part of the installed package)."""
