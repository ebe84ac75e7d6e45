output "pool_user_data" {
  description = "Pool members' user-data: base64 of the gzip-compressed cloud-config."
  value       = local.pool_user_data

  precondition {
    condition     = !local.embedded || length(local.wheels_missing) == 0
    error_message = "wheel_source = \"embedded\" needs exactly one wheel per package in ${var.wheel_dir}; missing or ambiguous: ${join(", ", local.wheels_missing)}. Run `make wheels` (it empties dist/ first)."
  }

  precondition {
    condition     = local.embedded || var.package_index_url != ""
    error_message = "wheel_source = \"index\" needs package_index_url."
  }

  precondition {
    condition     = local.pool_bytes < var.user_data_limit
    error_message = "The pool's user-data would be ${local.pool_bytes} encoded bytes; Exoscale accepts less than ${var.user_data_limit}. ${local.oversize_hint}"
  }
}

output "monitor_user_data" {
  description = "The monitor's user-data: base64 of the gzip-compressed cloud-config (holds secrets)."
  value       = local.monitor_user_data
  sensitive   = true

  precondition {
    condition     = !local.embedded || length(local.wheels_missing) == 0
    error_message = "wheel_source = \"embedded\" needs exactly one wheel per package in ${var.wheel_dir}; missing or ambiguous: ${join(", ", local.wheels_missing)}. Run `make wheels` (it empties dist/ first)."
  }

  # Checked at plan time, before the API key or the pool exist.
  precondition {
    condition     = local.monitor_bound_bytes < var.user_data_limit
    error_message = "The monitor's user-data could reach ${local.monitor_bound_bytes} encoded bytes; Exoscale accepts less than ${var.user_data_limit}. ${local.oversize_hint}"
  }
}

output "pool_cloud_config" {
  description = "The pool's cloud-config as text (for validation)."
  value       = local.pool_cloud_config
}

output "monitor_cloud_config" {
  description = "The monitor's cloud-config as text (for validation; holds secrets)."
  value       = local.monitor_cloud_config_for.real
  sensitive   = true
}

output "user_data_bytes" {
  description = "Encoded sizes: the pool's exact size and the monitor's plan-time upper bound and exact size."
  value = {
    limit         = var.user_data_limit
    pool          = local.pool_bytes
    monitor_bound = local.monitor_bound_bytes
    monitor       = nonsensitive(length(local.monitor_user_data))
  }
}

output "scaler_url" {
  description = "exo-scaler's base URL on the monitor."
  value       = local.scaler_url
}

output "embedded_wheels" {
  description = "Wheel files embedded in the user-data (empty with wheel_source = \"index\")."
  value       = local.embedded ? sort([for d, w in local.wheel_files : w.name]) : []
}
