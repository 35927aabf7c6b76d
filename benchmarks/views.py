"""Benchmark views: the floor that Django itself sets for a page on this machine.

The HTTP benchmark (bench/run) measures every page against the bare view in the same
run. It goes through the whole middleware stack, like every page, but reads no session
and runs no query, so what a page costs beyond it is the page's own work. The layout
view renders the site's base template around an empty page, also without queries, so
the run shows how much of a page's time the shared layout takes.
"""

from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def bare(request):
    return render(request, "benchmarks/bare.html", {"title": "CPR Portal"})


@require_safe
def layout(request):
    return render(request, "benchmarks/layout.html")
