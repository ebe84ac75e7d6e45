locals {
  # One price table (EUR/h): prices.json, which exo-lab's run cost reads too; the variable
  # only overrides it.
  prices = var.prices_eur_per_hour != null ? var.prices_eur_per_hour : tomap(jsondecode(file("${path.module}/prices.json")))
  instance_price = {
    pool    = lookup(local.prices, var.pool_instance_type, null)
    monitor = lookup(local.prices, var.monitor_instance_type, null)
  }
  pool_member_eur_per_hour = local.instance_price.pool == null ? null : (
    local.instance_price.pool + var.pool_disk_size * local.prices["disk_gib"]
  )
  fixed_eur_per_hour = local.instance_price.monitor == null ? null : (
    local.instance_price.monitor + var.monitor_disk_size * local.prices["disk_gib"] + local.prices["nlb"]
  )
  cost_at = {
    for name, size in { min = var.pool_min_size, initial = var.pool_initial_size, max = var.pool_max_size } :
    name => (local.pool_member_eur_per_hour == null || local.fixed_eur_per_hour == null ? null :
    local.fixed_eur_per_hour + size * local.pool_member_eur_per_hour)
  }
}

output "nlb_ip_address" {
  description = "Public address of the NLB: http://<this>/ reaches slow-web."
  value       = exoscale_nlb.web.ip_address
}

output "app_url" {
  description = "slow-web through the NLB."
  value       = "http://${exoscale_nlb.web.ip_address}/"
}

output "monitor_ip_address" {
  description = "Public address of the monitor."
  value       = exoscale_compute_instance.monitor.public_ip_address
}

output "grafana_url" {
  description = "Grafana (reachable only from admin_cidrs, or from anywhere with course_grader_access)."
  value       = "http://${exoscale_compute_instance.monitor.public_ip_address}:3000/"
}

output "prometheus_url" {
  description = "Prometheus (reachable only from admin_cidrs, or from anywhere with course_grader_access)."
  value       = "http://${exoscale_compute_instance.monitor.public_ip_address}:9090/"
}

output "scaler_internal_url" {
  description = "exo-scaler's webhook base, bound to the monitor's loopback (use an SSH tunnel to reach it)."
  value       = module.cloud_init.scaler_url
}

output "instance_pool_id" {
  description = "The pool exo-sd lists and exo-scaler sizes."
  value       = exoscale_instance_pool.web.id
}

output "nlb_id" {
  description = "The NLB whose health checks exo-scaler reads (exo-scaler's role may get this NLB only)."
  value       = exoscale_nlb.web.id
}

output "zone" {
  description = "Exoscale zone of every resource."
  value       = var.zone
}

output "api_endpoint" {
  description = "The zone's v2 API (exo-lab verify and the target load test read the pool and the NLB there)."
  value       = "https://api-${var.zone}.exoscale.com/v2"
}

output "grafana_admin_password" {
  description = "Password of Grafana's admin user (generated)."
  value       = random_password.grafana_admin.result
  sensitive   = true
}

output "WARNING_course_grader_access" {
  description = "Loud while course_grader_access opens Grafana and Prometheus to the Internet."
  value       = var.course_grader_access ? "!!! course_grader_access is ON: Grafana (3000) and Prometheus (9090) on ${exoscale_compute_instance.monitor.public_ip_address} are open to the whole Internet. Turn it off (-var course_grader_access=false) when grading is done. !!!" : null
}

output "wheels_bucket" {
  description = "SOS bucket holding the wheels instances install (deleted by terraform destroy)."
  value       = var.wheel_source == "bucket" ? "https://sos-${var.zone}.exo.io/${aws_s3_bucket.wheels.bucket}" : null
}

output "scaler_token" {
  description = "Bearer token of exo-scaler's mutating routes."
  value       = random_password.scaler_token.result
  sensitive   = true
}

output "member_admin_token" {
  description = "Bearer token of slow-web's admin API (port 8081, reachable from the monitor only)."
  value       = random_password.member_admin_token.result
  sensitive   = true
}

# The two services' keys, for `exo-lab check-keys` (run by `make deploy` right after apply) and
# `exo-lab verify`. Sensitive: the key ids too, so no log of an apply names them.
output "exo_sd_api_key" {
  description = "exo-sd's API key (role exo-sd: list this pool's members)."
  value       = exoscale_iam_api_key.exo_sd.key
  sensitive   = true
}

output "exo_sd_api_secret" {
  description = "Secret of exo-sd's API key."
  value       = exoscale_iam_api_key.exo_sd.secret
  sensitive   = true
}

output "exo_scaler_api_key" {
  description = "exo-scaler's API key (role exo-scaler: read, scale and evict this pool, read its NLB)."
  value       = exoscale_iam_api_key.exo_scaler.key
  sensitive   = true
}

output "exo_scaler_api_secret" {
  description = "Secret of exo-scaler's API key."
  value       = exoscale_iam_api_key.exo_scaler.secret
  sensitive   = true
}

output "iam_scope_by_id" {
  description = "Whether the roles' rules are scoped to this pool/NLB (false: the weaker operation-only fallback)."
  value       = var.iam_scope_by_id
}

output "user_data_bytes" {
  description = "Encoded size of each user-data against the provider's limit (32768)."
  value       = module.cloud_init.user_data_bytes
}

output "cost_estimate_eur_per_hour" {
  description = "Estimated EUR per hour from prices.json or var.prices_eur_per_hour (estimates: check https://www.exoscale.com/pricing/)."
  value = {
    pool_member            = local.pool_member_eur_per_hour
    monitor_and_nlb        = local.fixed_eur_per_hour
    at_min_size            = local.cost_at.min
    at_initial_size        = local.cost_at.initial
    at_max_size            = local.cost_at.max
    budget_eur             = var.budget_eur
    budget_hours_at_max    = local.cost_at.max == null ? null : floor(var.budget_eur / local.cost_at.max)
    missing_price_for_type = [for t in [var.pool_instance_type, var.monitor_instance_type] : t if !contains(keys(local.prices), t)]
  }
}
