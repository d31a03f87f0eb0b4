"""The XenServer import pipeline: a raw machine image to a published, compressed VHD template."""
