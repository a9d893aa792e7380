from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from project.models import Membership
from project.tenancy import ROLES


class Command(BaseCommand):
    help = "Create or update a user with a role and tenant memberships."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, required=True)
        parser.add_argument(
            "--tenant", action="append", default=[], help="Tenant id (repeat for several)."
        )
        parser.add_argument("--password", help="Password (default: keep or leave unusable).")
        parser.add_argument("--email", default="")

    @transaction.atomic
    def handle(self, *args, username, role, tenant, password, email, **options):
        if role != "admin" and not tenant:
            self.stderr.write(f"Note: {username} has no tenant; they see only tenant-less rows.")
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": email}
        )
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_staff = user.is_superuser = role == "admin"
        user.save()
        # The groups come from a migration; recreate one if someone deleted it.
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(group)
        user.memberships.exclude(tenant_id__in=tenant).delete()
        for tenant_id in tenant:
            Membership.objects.get_or_create(user=user, tenant_id=tenant_id)
        verb = "Created" if created else "Updated"
        tenants = ", ".join(tenant) or ("all tenants" if role == "admin" else "no tenant")
        self.stdout.write(f"{verb} {role} {username} ({tenants})")
