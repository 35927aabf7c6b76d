"""The bare view: the floor that Django itself sets for a page on this machine.

The HTTP benchmark (bench/run) measures every page against this view in the same run.
It goes through the whole middleware stack, like every page, but reads no session and
runs no query, so what a page costs beyond it is the page's own work.
"""

from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def bare(request):
    return render(request, "benchmarks/bare.html", {"title": "CPR Portal"})
