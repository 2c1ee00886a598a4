"""What an operator watches: the live fan-out of events entering the brokers (``tail``),
the sampled history behind the dashboard, and the dashboard itself at ``/ui`` on the
admin API.

This package is core: it never imports the plugin packages or the composition root.
What it needs of the running system (status, explanations, CESQL) comes in through
:class:`eventing.ui.hooks.UiHooks`, filled by ``eventing.app.observatory``.
"""
