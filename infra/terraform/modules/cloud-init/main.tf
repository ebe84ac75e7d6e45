locals {
  provisioning_dir = coalesce(var.grafana_provisioning_dir, "${path.module}/../../../../grafana-provisioning")
  templates        = "${path.module}/templates"

  venv       = "/opt/exo-autoscale/venv"
  wheels_dir = "/opt/exo-autoscale/wheels"
  config_dir = "/etc/exo-autoscale"
  sd_file    = "/srv/targets.json"
  scaler_url = "http://${var.scaler_listen_host}:${var.scaler_port}"

  # The largest value each runtime entry may take (enforced by the variable's validation);
  # the plan-time size bound below assumes every one of them at full length, incompressible.
  runtime_max_length = {
    pool_id                = 64
    nlb_id                 = 64
    sd_api_key             = 64
    sd_api_secret          = 128
    scaler_api_key         = 64
    scaler_api_secret      = 128
    scaler_token           = 128
    grafana_admin_password = 128
    member_admin_token     = 128
    wheel_base_url         = 128
  }

  # Every variant of the runtime values the documents are rendered with.
  runtime_for = {
    # The bucket's name exists only after apply, like the secrets.
    real = merge(var.monitor_runtime, { member_admin_token = var.member_admin_token, wheel_base_url = var.wheel_base_url })
    # Same text with every runtime value empty: known at plan time.
    empty = { for k, _ in local.runtime_max_length : k => "" }
    # Every runtime value replaced by a marker, to count where each one appears.
    marked = { for k, _ in local.runtime_max_length : k => "@@${k}@@" }
  }

  # vCPUs of Exoscale's standard instance types, as sold: https://www.exoscale.com/pricing/#compute
  # ("Standard Instances"; the API's GET /instance-type answers the same number as `cpus`).
  # exo-zone's catalog (packages/exo-zone/src/exo_zone/catalog.py) offers the first five with
  # the same counts; exo-lab's tests check that they agree.
  standard_vcpus = {
    "standard.micro"       = 1
    "standard.tiny"        = 1
    "standard.small"       = 2
    "standard.medium"      = 2
    "standard.large"       = 4
    "standard.extra-large" = 4
    "standard.huge"        = 8
    "standard.mega"        = 12
    "standard.titan"       = 16
    "standard.jumbo"       = 24
    "standard.colossus"    = 40
  }
  # exo-scaler --member-cores: the CPUs one member can burn, so the demand policy turns CPU
  # seconds per second into members (0: unknown type, refused by the outputs' precondition).
  member_cores = lookup(local.standard_vcpus, var.pool_instance_type, 0)

  # slow-web's admin API (drain), reachable from the monitor's security group only.
  member_admin_port = 8081
  # An admin drain (exit=false) gives in-flight requests until the scaler evicts the member,
  # drain_seconds after its request was accepted; slow-web's own deadline is the same, so it
  # answers what is still running with a clean 503 just before the VM goes away instead of a
  # reset. Without a scaler drain, a SIGTERM drain keeps slow-web's usual 30 s.
  member_drain_timeout = var.scaler_drain_seconds > 0 ? var.scaler_drain_seconds : 30
  # systemd must not SIGKILL a SIGTERM drain: the drain, then stopping the workers.
  member_stop_timeout = local.member_drain_timeout + 15

  # --- wheels --------------------------------------------------------------------------------
  # The checked-out version of each package, read from its pyproject.toml: the plan then names
  # exactly the wheel `make wheels` builds from this tree, and fails if dist/ holds another.
  packages_dir = coalesce(var.packages_dir, "${path.module}/../../../../packages")
  projects = {
    exo_client = "exo-client"
    exo_sd     = "exo-sd"
    exo_scaler = "exo-scaler"
    slow_web   = "slow-web"
  }
  versions = {
    for dist, project in local.projects : dist => regex(
      "(?m)^version\\s*=\\s*\"([^\"]+)\"", file("${local.packages_dir}/${project}/pyproject.toml")
    )[0]
  }
  wheel_names    = { for dist, version in local.versions : dist => "${dist}-${version}-py3-none-any.whl" }
  wheels_missing = [for dist, name in local.wheel_names : name if !fileexists("${var.wheel_dir}/${name}")]
  # sha256 of each wheel, known at plan time: pip refuses any file with another digest.
  wheel_sha256 = {
    for dist, name in local.wheel_names : dist => fileexists("${var.wheel_dir}/${name}") ? filesha256("${var.wheel_dir}/${name}") : ""
  }
  # The bucket's object key of each wheel: <sha256>/<file name>. New content is a new object,
  # never an overwrite a booting member could race; pip still sees the wheel's own file name.
  wheel_keys    = { for dist, name in local.wheel_names : dist => "${local.wheel_sha256[dist]}/${name}" }
  monitor_dists = ["exo_client", "exo_sd", "exo_scaler"]
  pool_dists    = ["slow_web"]

  bucket_mode = var.wheel_source == "bucket"
  # One line per wheel for `pip install --require-hashes -r`: by URL from the bucket (the name
  # is never looked up on any index), or an exact version from package_index_url. Either way
  # only the file with this sha256 installs.
  requirement_for = {
    for variant, runtime in local.runtime_for : variant => {
      for dist, project in local.projects : dist => (local.bucket_mode
        ? "${project} @ ${runtime.wheel_base_url}/${local.wheel_keys[dist]} --hash=sha256:${local.wheel_sha256[dist]}"
        : "${project}==${local.versions[dist]} --hash=sha256:${local.wheel_sha256[dist]}"
      )
    }
  }
  # Step 2 resolves the third-party dependencies of the installed wheels from dependency_index_url
  # only; our own names are pinned to the versions just installed, so they are already satisfied.
  monitor_pins = [for d in local.monitor_dists : "${local.projects[d]}==${local.versions[d]}"]
  pool_pins    = [for d in local.pool_dists : "${local.projects[d]}==${local.versions[d]}"]

  # --- files without secrets ------------------------------------------------------------------
  common_template_vars = {
    venv                 = local.venv
    config_dir           = local.config_dir
    sd_file              = local.sd_file
    scaler_host          = var.scaler_listen_host
    scaler_port          = var.scaler_port
    scaler_interval      = var.scaler_interval
    pool_min_size        = var.pool_min_size
    pool_max_size        = var.pool_max_size
    member_cores         = local.member_cores
    slow_web_work_ms     = var.slow_web_work_ms
    drain_seconds        = var.scaler_drain_seconds
    admin_port           = local.member_admin_port
    drain_timeout        = local.member_drain_timeout
    stop_timeout         = local.member_stop_timeout
    package_index_url    = var.package_index_url
    dependency_index_url = var.dependency_index_url
    bucket_mode          = local.bucket_mode
    wheels_txt           = "${local.config_dir}/wheels.txt"
  }

  grafana_files = {
    "/etc/grafana/provisioning/datasources/prometheus.yaml"  = file("${local.provisioning_dir}/datasources/prometheus.yaml")
    "/etc/grafana/provisioning/dashboards/provider.yaml"     = file("${local.provisioning_dir}/dashboards/provider.yaml")
    "/etc/grafana/provisioning/dashboards/autoscaling.json"  = file("${local.provisioning_dir}/dashboards/autoscaling.json")
    "/etc/grafana/provisioning/alerting/rules.yaml"          = file("${local.provisioning_dir}/alerting/rules.yaml")
    "/etc/grafana/provisioning/alerting/contact-points.yaml" = file("${local.provisioning_dir}/alerting/contact-points.yaml")
    "/etc/grafana/provisioning/alerting/policies.yaml"       = file("${local.provisioning_dir}/alerting/policies.yaml")
  }

  monitor_public_files = merge(local.grafana_files, {
    "/etc/prometheus/prometheus.yml"                                  = templatefile("${local.templates}/prometheus.yml.tftpl", local.common_template_vars)
    "/etc/systemd/system/exo-sd.service"                              = templatefile("${local.templates}/exo-sd.service.tftpl", local.common_template_vars)
    "/etc/systemd/system/exo-scaler.service"                          = templatefile("${local.templates}/exo-scaler.service.tftpl", local.common_template_vars)
    "/etc/systemd/system/grafana-server.service.d/exo-autoscale.conf" = templatefile("${local.templates}/grafana-server.override.conf.tftpl", local.common_template_vars)
    "/usr/local/sbin/exo-autoscale-setup" = templatefile("${local.templates}/monitor-setup.sh.tftpl", merge(local.common_template_vars, {
      pins = local.monitor_pins
    }))
    "/etc/apt/preferences.d/grafana.pref" = file("${local.templates}/grafana-apt-pin.tftpl")
  }, local.metadata_guard_files)

  pool_files = merge({
    "/etc/systemd/system/slow-web.service" = templatefile("${local.templates}/slow-web.service.tftpl", local.common_template_vars)
    "/usr/local/sbin/exo-autoscale-setup" = templatefile("${local.templates}/pool-setup.sh.tftpl", merge(local.common_template_vars, {
      pins = local.pool_pins
    }))
  }, local.metadata_guard_files)

  # Both roles: after boot only root may reach the metadata server, which serves the user-data
  # (secrets) to any local process that asks.
  metadata_guard_files = {
    "${local.config_dir}/metadata-guard.nft"         = file("${local.templates}/metadata-guard.nft.tftpl")
    "/etc/systemd/system/exo-metadata-guard.service" = templatefile("${local.templates}/exo-metadata-guard.service.tftpl", local.common_template_vars)
    # cloud-init installs `packages` (final stage: package_update_upgrade_install) before it runs
    # our runcmd script (scripts_user), so dpkg would start Prometheus and node_exporter before
    # the guard is loaded (canonical/cloud-init config/cloud.cfg.tmpl: write_files in the init
    # stage, package installs then scripts_user in the final stage). Debian's maintainer
    # scripts start services through invoke-rc.d / deb-systemd-invoke, which ask
    # /usr/sbin/policy-rc.d first: exit 101 means "action forbidden". The setup script loads
    # the guard, then removes this file and starts the services itself.
    (local.policy_rc_d) = file("${local.templates}/policy-rc.d.tftpl")
  }
  policy_rc_d = "/usr/sbin/policy-rc.d"
  # Files written executable; every other public file is 0644.
  executables = ["/usr/local/sbin/exo-autoscale-setup", local.policy_rc_d]

  # --- assembling cloud-config ----------------------------------------------------------------
  monitor_packages = ["prometheus", "python3-venv", "curl", "gnupg", "ca-certificates", "nftables"]
  pool_packages    = ["prometheus-node-exporter", "python3-venv", "nftables"]

  secret_permissions = { permissions = "0600", owner = "root:root" }

  pool_secret_files = {
    "${local.config_dir}/admin-token" = "member-admin-token.tftpl"
  }

  pool_cloud_config_for = {
    for variant, runtime in local.runtime_for : variant => join("", ["#cloud-config\n", yamlencode({
      package_update = true
      packages       = local.pool_packages
      write_files = concat(
        [for path, content in local.pool_files : {
          path        = path
          content     = content
          permissions = contains(local.executables, path) ? "0755" : "0644"
        }],
        [{
          path        = "${local.config_dir}/wheels.txt"
          content     = join("", [for d in local.pool_dists : "${local.requirement_for[variant][d]}\n"])
          permissions = "0644"
        }],
        [for path, tpl in local.pool_secret_files : merge(local.secret_permissions, {
          path    = path
          content = templatefile("${local.templates}/${tpl}", merge(local.common_template_vars, runtime))
        })],
      )
      runcmd = [["/usr/local/sbin/exo-autoscale-setup"]]
    })])
  }

  monitor_secret_files = {
    for name, tpl in {
      # One env file per service, each with its own key: systemd reads it (root) for that unit
      # only, so neither service ever holds the other's key.
      "${local.config_dir}/exo-sd.env"     = "exo-sd.env.tftpl"
      "${local.config_dir}/exo-scaler.env" = "exo-scaler.env.tftpl"
      "${local.config_dir}/grafana.env"    = "grafana.env.tftpl"
      "${local.config_dir}/scaler-token"   = "scaler-token.tftpl"
      # The pool members' admin token, for exo-scaler's drain requests.
      "${local.config_dir}/member-admin-token" = "member-admin-token.tftpl"
    } : name => tpl
  }

  monitor_cloud_config_for = {
    for variant, runtime in local.runtime_for : variant => join("", ["#cloud-config\n", yamlencode({
      package_update = true
      packages       = local.monitor_packages
      write_files = concat(
        [for path, content in local.monitor_public_files : {
          path        = path
          content     = content
          permissions = contains(local.executables, path) ? "0755" : "0644"
        }],
        [{
          path        = "${local.config_dir}/wheels.txt"
          content     = join("", [for d in local.monitor_dists : "${local.requirement_for[variant][d]}\n"])
          permissions = "0644"
        }],
        [for path, tpl in local.monitor_secret_files : merge(local.secret_permissions, {
          path    = path
          content = templatefile("${local.templates}/${tpl}", merge(local.common_template_vars, runtime, { zone = var.zone }))
        })],
      )
      runcmd = [["/usr/local/sbin/exo-autoscale-setup"]]
    })])
  }

  # gzip first, then base64: cloud-init inflates gzip user-data itself, and the provider passes
  # base64 through unchanged.
  pool_user_data    = base64gzip(local.pool_cloud_config_for.real)
  monitor_user_data = base64gzip(local.monitor_cloud_config_for.real)

  # Upper bound of each encoded size, known at plan time (both documents now hold values that
  # exist only after apply): the empty-value rendering, plus every occurrence of every runtime
  # value at its maximum length, as if gzip could not shrink it at all (base64: 4 bytes per 3,
  # +4 for padding), plus 16 bytes per occurrence for a broken back-reference.
  cloud_config_for = {
    pool    = local.pool_cloud_config_for
    monitor = local.monitor_cloud_config_for
  }
  runtime_occurrences = {
    for role, variants in local.cloud_config_for : role => {
      for k, _ in local.runtime_max_length : k => length(regexall("@@${k}@@", variants.marked))
    }
  }
  bound_bytes = {
    for role, variants in local.cloud_config_for : role => (
      length(base64gzip(variants.empty)) +
      ceil(sum([for k, n in local.runtime_occurrences[role] : n * local.runtime_max_length[k]]) * 4 / 3) + 4 +
      16 * sum(values(local.runtime_occurrences[role]))
    )
  }

  oversize_hint = "Wheels no longer travel in the user-data: look for a large file under grafana-provisioning/ or the templates."
}
