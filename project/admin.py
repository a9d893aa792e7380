from django.contrib import admin

from project import tenancy
from project.login import AdminLoginForm
from project.models import AuditEntry, Membership

# The admin's login says so when the throttle refuses (the backend applies it to every login).
admin.site.login_form = AdminLoginForm


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant_id"]
    list_filter = ["tenant_id"]
    search_fields = ["user__username", "tenant_id"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "username", "action", "target_type", "count", "source"]
    list_filter = ["action", "target_type", "source"]
    search_fields = ["username", "action"]
    date_hierarchy = "timestamp"
    show_full_result_count = False

    def get_queryset(self, request):
        # Staff who are not admins see the entries of their tenants only, as in the console.
        return tenancy.scope_audit(super().get_queryset(request), request.user)

    def has_change_permission(self, request, obj=None):
        return False  # the audit trail is append-only
