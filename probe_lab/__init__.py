"""The censorship lab: simulated censored networks in Linux network namespaces.

See docs/lab.md. ``topology`` builds the namespaces, ``servers`` runs the
real servers inside them, ``censor`` the on-path censor, ``scenario``
reads scenario files and ``runner`` puts it all together.
"""
