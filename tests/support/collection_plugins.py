"""Let Ansible's own Templar find this collection's plugins (the mirror_summary filter) in unit tests.

The root conftest puts <tmp>/ansible_collections/imagepusher/registry -> this work tree on sys.path;
Ansible finds a collection's filters through its collection loader, which ansible-playbook installs
at start-up. Installing it here, once, on the same path, is what makes `imagepusher.registry.X`
resolve in a Templar built by a test.
"""

from pathlib import Path

_installed = []


def install():
    """Install the collection loader (once, and before anything else set it up: Ansible keeps the first)."""
    if _installed:
        return
    import ansible_collections
    from ansible.plugins.loader import init_plugin_loader
    init_plugin_loader([str(Path(path).parent) for path in ansible_collections.__path__])
    _installed.append(True)
