"""External tasks as each REST face answers them. Every key is always present (null if unset)."""

from project.rest import format_date
from project.variables import to_response


def camunda_task(task) -> dict:
    """Camunda's ExternalTaskDto (latest 7.x keys, including createTime and errorDetails)."""
    return {
        "activityId": task.activity_id,
        "activityInstanceId": task.activity_instance_id,
        "errorMessage": task.error_message,
        "errorDetails": task.error_details,
        "executionId": task.execution_id,
        "id": task.id,
        "lockExpirationTime": format_date(task.lock_expiration_time),
        "createTime": format_date(task.create_time),
        "processDefinitionId": task.process_definition_id,
        "processDefinitionKey": task.process_definition_key,
        "processDefinitionVersionTag": task.process_definition_version_tag,
        "processInstanceId": task.process_instance_id,
        "retries": task.retries,
        "suspended": task.suspended,
        "workerId": task.worker_id,
        "topicName": task.topic_name,
        "tenantId": task.tenant_id,
        "priority": task.priority,
        "businessKey": task.business_key,
    }


def camunda_locked_task(task, variable_names=None, include_extension_properties=False) -> dict:
    """Camunda's LockedExternalTaskDto: the task plus its variables and extension properties."""
    body = camunda_task(task)
    body["variables"] = to_response(task.variables, variable_names)
    body["extensionProperties"] = (
        dict(task.extension_properties or {}) if include_extension_properties else {}
    )
    return body
