"""ml-connector: ERP events to tracked Twilio notifications."""

__version__ = "0.1.0"

from ml_connector import logmask as _logmask

_logmask.install()  # before any client logs a URL: ERP URLs can carry passwords
