"""Dialogs: each validates before it enables OK and does its work on a worker."""
