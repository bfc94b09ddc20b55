"""The HTTP side: one worker answering requests (Falcon).  `app.create_app(settings,
services)` builds the application; `services.Services` is what it answers from."""
