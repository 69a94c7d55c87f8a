"""Schedulers route each request's prefill and decode over engine pools."""
