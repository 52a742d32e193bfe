"""Faithful simulators of Twilio and the ERPs.

They are an independent second reading of each wire format: nothing here imports from the rest
of ml_connector, so a misunderstanding shared by an adapter and its simulator cannot hide.
"""
