# Index-only scans for four job query shapes that read the heap at 1M jobs (bench/README.md):
# message/timer jobs by id with retries and suspension (job_type_idx), `executable` counts
# (job_executable_idx), withException with a definition key or tenants (job_exception_idx now on
# withException's own condition, with the key and tenant), and withoutTenantId sorted by
# definition id (job_tenant_idx with the definition id).

import project.indexes
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0005_activity_id_index'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='job',
            name='job_exception_idx',
        ),
        migrations.RemoveIndex(
            model_name='job',
            name='job_tenant_idx',
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('exception_message__isnull', False), ('exception_stacktrace__isnull', False), _connector='OR'), fields=['-create_time'], include=('process_definition_key', 'tenant_id'), name='job_exception_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=project.indexes.SortIndex(models.OrderBy(models.F('due_date'), nulls_first=True), condition=models.Q(('retries__gt', 0)), name='job_executable_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['type', 'id'], include=('retries', 'suspended'), name='job_type_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=project.indexes.SortIndex(models.OrderBy(models.F('tenant_id'), nulls_first=True), models.OrderBy(models.F('process_definition_key'), nulls_first=True), models.F('id'), include=('process_definition_id',), name='job_tenant_idx'),
        ),
    ]
