"""OmniHub's processes and commands: each module here is one composition root.

A process (``api``, ``gateway``, ``worker``, ``saga-bridge``, ``plan-cache``,
``projector``) is a module that builds its real clients, hands them to the code in the
layers below and runs until SIGTERM; ``omnihub <process> run`` starts it. Which
consumers each runs is declared in :mod:`streams.topology`. ``apps.commands`` holds the
operators' commands. Nothing below ``apps`` imports it.
"""
