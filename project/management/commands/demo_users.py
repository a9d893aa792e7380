from django.core.management import call_command
from django.core.management.base import BaseCommand

# Demo logins for a local console; never use these on a reachable server.
DEMO_USERS = [
    ("admin", "admin", "taskyard-admin", []),
    ("operator", "operator", "taskyard-operator", ["acme", "globex"]),
    ("viewer", "viewer", "taskyard-viewer", ["acme"]),
    ("worker", "worker", "taskyard-worker", ["acme", "globex", "initech"]),
]


class Command(BaseCommand):
    help = "Create the demo users (admin, operator, viewer of one tenant, worker)."

    def handle(self, *args, **options):
        for username, role, password, tenants in DEMO_USERS:
            args = [username, "--role", role, "--password", password]
            for tenant in tenants:
                args += ["--tenant", tenant]
            call_command("create_user", *args, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("\nLogins:")
        for username, role, password, tenants in DEMO_USERS:
            scope = ", ".join(tenants) if tenants else "all tenants"
            self.stdout.write(f"  {username:<9} {password:<18} {role} ({scope})")
