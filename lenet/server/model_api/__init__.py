"""The prediction server's API on top of the HTTP layer (``lenet.server.httpd``): routes, the Open
Inference Protocol, uploaded images, activation maps, the page's static files.

``PredictionServer`` (app.py) is a ``HardenedServer`` whose routes (routes.py) serve one model.
"""
