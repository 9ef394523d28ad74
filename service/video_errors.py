"""The video jobs' own errors, in the service's hierarchy (service/errors.py renders them as problem+json)."""

from __future__ import annotations

from service.errors import AtelierError, NotFound


class UnsupportedVideo(AtelierError):
    """Not a video this server decodes: no video track, audio only, truncated or corrupt bytes [415]."""

    status, slug, title = 415, "unsupported-video", "Unsupported or undecodable video"


class VideoSupportMissing(AtelierError):
    """This install has no video libraries (the `video` extra: PyAV and OpenCV) [501]."""

    status, slug, title = 501, "video-unavailable", "Video support is not installed"


class UnknownJob(NotFound):
    """No such job for this API key, or its result has expired [404]."""

    slug, title = "unknown-job", "Unknown video job"


class JobNotDone(AtelierError):
    """The job's result is asked for before the job is done [409]."""

    status, slug, title = 409, "job-not-done", "The job is not done"


class JobCancelled(Exception):
    """Raised inside a running job when it has been cancelled; never reaches HTTP."""
