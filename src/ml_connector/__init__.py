"""ml-connector: ERP events to tracked Twilio notifications."""

__version__ = "0.1.0"
