"""Helpers for tests that run code in several threads at the same moment."""

import threading

from django.db import connection


def run_at_once(count, target):
    """Run `target` in `count` threads released together; return the errors they raised.

    Each thread gets its own database connection, as concurrent requests would, and
    closes it when done. Useful only with `django_db(transaction=True)`.
    """
    barrier = threading.Barrier(count)
    errors = []

    def worker():
        try:
            barrier.wait()
            target()
        except Exception as error:  # noqa: BLE001 - the test asserts on the list
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
