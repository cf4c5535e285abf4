"""kopf handlers: thin glue, one module per resource. Importing a module registers its handlers.

Everything here is glue: parse with the api models, compute with ``reconcile``/``inventory``,
write with ``kube``. No decision is made in a handler.
"""
