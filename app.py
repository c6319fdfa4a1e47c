"""The Chalice app: registers the blueprints, nothing else."""

from chalice.app import Chalice

from chalicelib.api import api
from chalicelib.events import events
from chalicelib.uppy import uppy

app = Chalice(app_name="lapse")
app.register_blueprint(api)
app.register_blueprint(events)
app.register_blueprint(uppy)
