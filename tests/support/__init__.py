"""Helpers shared by one family of test modules (the chat pages in a browser, lesson 04's app).

What most tests share is in ``helpers.py``; fixtures are in ``conftest.py``.
"""
