"""The reference for `make bench`: the same gunicorn + meinheld stack answering a fixed
small page, with no logic and no Redis.  The ratio server/reference says how much of
the stack's ceiling the banner logic keeps."""

import falcon

PAGE = b'{"campaign_id": 7, "quarter": 1, "banner_id": 123, "image_url": "/banners/123.svg"}'


class Fixed:
    def on_get(self, req, resp, campaign_id=None):
        resp.data = PAGE
        resp.content_type = falcon.MEDIA_JSON


application = falcon.App()
application.add_route("/campaigns/{campaign_id}", Fixed())
application.add_route("/healthz", Fixed())
