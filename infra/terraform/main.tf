locals {
  # The provider ignores null, so labels stay optional everywhere.
  labels = {
    project = "exo-autoscale"
    stack   = var.name_prefix
  }

  admin_ports = {
    ssh        = 22
    grafana    = 3000
    prometheus = 9090
  }

  # One rule per (port, CIDR): an empty admin_cidrs produces no rule at all.
  admin_rules = {
    for pair in setproduct(keys(local.admin_ports), var.admin_cidrs) :
    "${pair[0]}-${pair[1]}" => { port = local.admin_ports[pair[0]], cidr = pair[1] }
  }

  ssh_key_names = var.ssh_public_key == null ? [] : [exoscale_ssh_key.admin[0].name]
}

data "exoscale_template" "debian" {
  zone = var.zone
  name = var.template_name
}

resource "random_password" "scaler_token" {
  length  = 48
  special = false
}

# Bearer token of slow-web's admin API on every member; exo-scaler uses it to drain a member
# before evicting it.
resource "random_password" "member_admin_token" {
  length  = 48
  special = false
}

# Generated, so a bare `terraform apply` asks for nothing; read it with
# `terraform output -raw grafana_admin_password`.
resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

resource "exoscale_ssh_key" "admin" {
  count      = var.ssh_public_key == null ? 0 : 1
  name       = "${var.name_prefix}-admin"
  public_key = var.ssh_public_key
}

# --- network security ------------------------------------------------------------------------

resource "exoscale_security_group" "pool" {
  name        = "${var.name_prefix}-pool"
  description = "slow-web pool members: 8080 public (NLB keeps client addresses), 9100 and 8081 from the monitor"
}

resource "exoscale_security_group" "monitor" {
  name        = "${var.name_prefix}-monitor"
  description = "Monitor: Prometheus, Grafana, exo-sd, exo-scaler; admin ports from admin_cidrs only"
}

# The NLB forwards packets without rewriting the source address, so members see the clients'
# addresses on 8080: that port must be open to the Internet. Port 80 is the NLB's own listener
# (NLBs have no security group); nothing listens on 80 on the members.
resource "exoscale_security_group_rule" "pool_http_public" {
  security_group_id = exoscale_security_group.pool.id
  description       = "slow-web behind the NLB"
  type              = "INGRESS"
  protocol          = "TCP"
  cidr              = "0.0.0.0/0"
  start_port        = 8080
  end_port          = 8080
}

resource "exoscale_security_group_rule" "pool_http_healthcheck" {
  security_group_id     = exoscale_security_group.pool.id
  description           = "NLB health checks on /health"
  type                  = "INGRESS"
  protocol              = "TCP"
  public_security_group = "public-nlb-healthcheck-sources"
  start_port            = 8080
  end_port              = 8080
}

resource "exoscale_security_group_rule" "pool_node_exporter" {
  security_group_id      = exoscale_security_group.pool.id
  description            = "node_exporter, scraped by the monitor's Prometheus only"
  type                   = "INGRESS"
  protocol               = "TCP"
  user_security_group_id = exoscale_security_group.monitor.id
  start_port             = 9100
  end_port               = 9100
}

# slow-web's admin API (authenticated drain): only exo-scaler, on the monitor, calls it.
resource "exoscale_security_group_rule" "pool_admin_api" {
  security_group_id      = exoscale_security_group.pool.id
  description            = "slow-web admin API (drain before eviction), from the monitor's exo-scaler only"
  type                   = "INGRESS"
  protocol               = "TCP"
  user_security_group_id = exoscale_security_group.monitor.id
  start_port             = 8081
  end_port               = 8081
}

resource "exoscale_security_group_rule" "pool_ssh_admin" {
  for_each = toset(var.admin_cidrs)

  security_group_id = exoscale_security_group.pool.id
  description       = "SSH from an admin network"
  type              = "INGRESS"
  protocol          = "TCP"
  cidr              = each.value
  start_port        = 22
  end_port          = 22
}

resource "exoscale_security_group_rule" "monitor_admin" {
  for_each = local.admin_rules

  security_group_id = exoscale_security_group.monitor.id
  description       = "admin access (${each.key})"
  type              = "INGRESS"
  protocol          = "TCP"
  cidr              = each.value.cidr
  start_port        = each.value.port
  end_port          = each.value.port
}

# Opt-in for the course's grading robot, which reads Prometheus and Grafana from anywhere.
# Off by default; the `WARNING_course_grader_access` output says so loudly while it is on.
resource "exoscale_security_group_rule" "monitor_grader" {
  for_each = var.course_grader_access ? { grafana = 3000, prometheus = 9090 } : {}

  security_group_id = exoscale_security_group.monitor.id
  description       = "course grader: ${each.key} open to the Internet (course_grader_access)"
  type              = "INGRESS"
  protocol          = "TCP"
  cidr              = "0.0.0.0/0"
  start_port        = each.value
  end_port          = each.value
}

# --- wheels: an SOS bucket holding the checked-out versions --------------------------------

# SOS bucket names are global: a random suffix lets two stacks (or a re-deploy right after a
# destroy) coexist.
resource "random_id" "bucket" {
  byte_length = 4
}

resource "aws_s3_bucket" "wheels" {
  bucket = "${var.name_prefix}-wheels-${random_id.bucket.hex}"
  # `terraform destroy` removes the bucket even if someone added files by hand.
  force_destroy = true
}

# Each wheel is open-source code: readable without credentials (object ACL public-read, as in
# terraform-provider-exoscale examples/sos/main.tf), so instances need no key to fetch it. The
# bucket itself stays private: nobody can list it. pip checks each file's sha256 anyway.
resource "aws_s3_object" "wheels" {
  for_each = var.wheel_source == "bucket" ? module.cloud_init.wheels : {}

  bucket = aws_s3_bucket.wheels.bucket
  # The sha256 is part of the key: new content is a new object, so a member booting while
  # `make deploy` uploads never finds a file whose hash its user-data does not pin.
  key          = each.value.key
  source       = each.value.path
  acl          = "public-read"
  content_type = "application/zip"
  # A missing file stops the plan in the module first.
  etag = fileexists(each.value.path) ? filemd5(each.value.path) : null

  lifecycle {
    # The new object exists before the old one goes, and the old one goes only after the pool
    # and the monitor point at the new one.
    create_before_destroy = true
  }
}

# --- the pool behind the NLB -------------------------------------------------------------------

resource "exoscale_anti_affinity_group" "pool" {
  name        = "${var.name_prefix}-pool"
  description = "Spread slow-web members over distinct hypervisors"
}

resource "exoscale_instance_pool" "web" {
  zone                    = var.zone
  name                    = "${var.name_prefix}-web"
  description             = "slow-web members, sized by exo-scaler"
  template_id             = data.exoscale_template.debian.id
  instance_type           = var.pool_instance_type
  disk_size               = var.pool_disk_size
  size                    = var.pool_initial_size
  instance_prefix         = "${var.name_prefix}-web"
  security_group_ids      = [exoscale_security_group.pool.id]
  anti_affinity_group_ids = [exoscale_anti_affinity_group.pool.id]
  key_pair                = var.ssh_public_key == null ? null : exoscale_ssh_key.admin[0].name
  user_data               = module.cloud_init.pool_user_data
  labels                  = local.labels

  # Members install slow-web from the bucket at boot.
  depends_on = [aws_s3_object.wheels]

  lifecycle {
    # exo-scaler owns the size once the pool exists: a re-apply must never undo its work.
    ignore_changes = [size]

    precondition {
      condition     = var.pool_min_size <= var.pool_initial_size && var.pool_initial_size <= var.pool_max_size
      error_message = "Pool sizes must satisfy pool_min_size <= pool_initial_size <= pool_max_size."
    }
  }
}

resource "exoscale_nlb" "web" {
  zone        = var.zone
  name        = "${var.name_prefix}-nlb"
  description = "Public entry point: 80 -> slow-web 8080"
  labels      = local.labels
}

resource "exoscale_nlb_service" "http" {
  zone             = var.zone
  name             = "${var.name_prefix}-http"
  description      = "HTTP to slow-web"
  nlb_id           = exoscale_nlb.web.id
  instance_pool_id = exoscale_instance_pool.web.id
  protocol         = "tcp"
  strategy         = "round-robin"
  port             = 80
  target_port      = 8080

  healthcheck {
    mode     = "http"
    port     = 8080
    uri      = "/health"
    interval = 5
    timeout  = 3
    retries  = 1
  }
}

# --- least-privilege credentials: a role and a key per service ----------------------------

locals {
  # Exactly the operations each service calls through exo-client, scoped to this pool and NLB
  # (iam_scope_by_id). Each policy is a file of its own (the reasons for each rule are in
  # policies/README.md) so exo-lab gives its exo-sd and exo-scaler keys with these very roles.
  iam_policy = {
    exo_sd = jsondecode(templatefile("${path.module}/policies/exo-sd-role.json.tftpl", {
      pool_id     = exoscale_instance_pool.web.id
      scope_by_id = var.iam_scope_by_id
    }))
    exo_scaler = jsondecode(templatefile("${path.module}/policies/exo-scaler-role.json.tftpl", {
      pool_id     = exoscale_instance_pool.web.id
      nlb_id      = exoscale_nlb.web.id
      scope_by_id = var.iam_scope_by_id
    }))
  }
}

resource "exoscale_iam_role" "exo_sd" {
  name        = "${var.name_prefix}-exo-sd"
  description = "exo-sd: list the members of one instance pool"
  editable    = true
  labels      = local.labels

  policy = local.iam_policy.exo_sd
}

resource "exoscale_iam_role" "exo_scaler" {
  name        = "${var.name_prefix}-exo-scaler"
  description = "exo-scaler: read, scale and evict one instance pool; read its NLB"
  editable    = true
  labels      = local.labels

  policy = local.iam_policy.exo_scaler
}

# A key created right after its role can be refused: Exoscale's own CSI driver integration
# tests wait 3 s there (exoscale/exoscale-csi-driver internal/integ/cluster/utils.go, "necessary
# due to issue [sc-91482]"). Built into Terraform (no time provider to download); runs again
# only when a role is replaced.
resource "terraform_data" "iam_roles_settle" {
  triggers_replace = [exoscale_iam_role.exo_sd.id, exoscale_iam_role.exo_scaler.id]

  provisioner "local-exec" {
    command = "sleep 10"
  }
}

resource "exoscale_iam_api_key" "exo_sd" {
  name       = "${var.name_prefix}-exo-sd"
  role_id    = exoscale_iam_role.exo_sd.id
  depends_on = [terraform_data.iam_roles_settle]
}

resource "exoscale_iam_api_key" "exo_scaler" {
  name       = "${var.name_prefix}-exo-scaler"
  role_id    = exoscale_iam_role.exo_scaler.id
  depends_on = [terraform_data.iam_roles_settle]
}

# --- the monitor -------------------------------------------------------------------------------

module "cloud_init" {
  source = "./modules/cloud-init"

  zone = var.zone
  # Its vCPUs become exo-scaler's --member-cores (the demand policy's unit of capacity).
  pool_instance_type = var.pool_instance_type
  pool_min_size      = var.pool_min_size
  pool_max_size      = var.pool_max_size
  scaler_interval    = var.scaler_interval_seconds
  # Also slow-web's --drain-timeout; the NLB health check below (every 5 s, 1 retry) takes a
  # draining member out within 10 s, hence the variable's lower bound.
  scaler_drain_seconds = var.scaler_drain_seconds
  member_admin_token   = random_password.member_admin_token.result
  wheel_source         = var.wheel_source
  # Path-style object URL on the zone's SOS endpoint (what s3_use_path_style uploads to).
  wheel_base_url       = "https://sos-${var.zone}.exo.io/${aws_s3_bucket.wheels.bucket}"
  package_index_url    = var.package_index_url
  dependency_index_url = var.dependency_index_url
  wheel_dir            = coalesce(var.wheel_dir, "${path.root}/../../dist")

  monitor_runtime = {
    pool_id                = exoscale_instance_pool.web.id
    nlb_id                 = exoscale_nlb.web.id
    sd_api_key             = exoscale_iam_api_key.exo_sd.key
    sd_api_secret          = exoscale_iam_api_key.exo_sd.secret
    scaler_api_key         = exoscale_iam_api_key.exo_scaler.key
    scaler_api_secret      = exoscale_iam_api_key.exo_scaler.secret
    scaler_token           = random_password.scaler_token.result
    grafana_admin_password = random_password.grafana_admin.result
  }
}

# cloud-init runs once: a changed user-data (a rotated token or key, new wheels, new config)
# reaches the monitor only through a new monitor. The provider would update user_data in place
# and leave the running VM on the old values.
resource "terraform_data" "monitor_user_data" {
  input = sha256(module.cloud_init.monitor_user_data)
}

resource "exoscale_compute_instance" "monitor" {
  zone               = var.zone
  name               = "${var.name_prefix}-monitor"
  template_id        = data.exoscale_template.debian.id
  type               = var.monitor_instance_type
  disk_size          = var.monitor_disk_size
  security_group_ids = [exoscale_security_group.monitor.id]
  ssh_keys           = local.ssh_key_names
  user_data          = module.cloud_init.monitor_user_data
  labels             = local.labels

  # The monitor installs exo-sd and exo-scaler from the bucket at boot, and exo-scaler checks
  # at start that --nlb has a service for the pool.
  depends_on = [aws_s3_object.wheels, exoscale_nlb_service.http]

  lifecycle {
    # A newer Debian template published by Exoscale must not replace a running monitor
    # (template_id forces replacement); a new monitor comes with a secret or config change.
    ignore_changes = [template_id]
    replace_triggered_by = [
      terraform_data.monitor_user_data,
      exoscale_iam_api_key.exo_sd,
      exoscale_iam_api_key.exo_scaler,
      random_password.scaler_token,
      random_password.member_admin_token,
      random_password.grafana_admin,
    ]
  }
}
