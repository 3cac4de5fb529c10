package k8stest

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// natsValues is the subset of the NATS chart's values.yaml (chart 2.14.x,
// nats-io/k8s helm/charts/nats/values.yaml) that deploy/nats/values.yaml
// uses. Decoding is strict, so a misspelt or misplaced key fails here rather
// than being silently ignored by Helm.
type natsValues struct {
	FullnameOverride string `json:"fullnameOverride"`
	Config           struct {
		NATS struct {
			TLS natsTLS `json:"tls"`
		} `json:"nats"`
		Cluster struct {
			Enabled  bool    `json:"enabled"`
			Replicas int     `json:"replicas"`
			TLS      natsTLS `json:"tls"`
		} `json:"cluster"`
		Merge     map[string]string `json:"merge"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				Enabled bool   `json:"enabled"`
				Dir     string `json:"dir"`
				PVC     struct {
					Enabled          bool   `json:"enabled"`
					Size             string `json:"size"`
					StorageClassName string `json:"storageClassName,omitempty"`
				} `json:"pvc"`
			} `json:"fileStore"`
			MemoryStore struct {
				Enabled bool `json:"enabled"`
			} `json:"memoryStore"`
		} `json:"jetstream"`
		Monitor struct {
			Enabled bool `json:"enabled"`
			Port    int  `json:"port"`
		} `json:"monitor"`
	} `json:"config"`
	Container struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
		// Env values are literals or {valueFrom: ...} maps.
		Env   map[string]any   `json:"env"`
		Patch []map[string]any `json:"patch"`
		Merge struct {
			Resources struct {
				Requests map[string]string `json:"requests"`
				Limits   map[string]string `json:"limits"`
			} `json:"resources"`
		} `json:"merge"`
	} `json:"container"`
	PodTemplate struct {
		Patch                     []map[string]any `json:"patch"`
		TopologySpreadConstraints map[string]struct {
			MaxSkew           int    `json:"maxSkew"`
			WhenUnsatisfiable string `json:"whenUnsatisfiable"`
		} `json:"topologySpreadConstraints"`
	} `json:"podTemplate"`
	PodDisruptionBudget struct {
		Enabled bool `json:"enabled"`
	} `json:"podDisruptionBudget"`
	PromExporter struct {
		Enabled    bool `json:"enabled"`
		PodMonitor struct {
			Enabled bool `json:"enabled"`
		} `json:"podMonitor"`
	} `json:"promExporter"`
	NatsBox struct {
		Enabled bool `json:"enabled"`
	} `json:"natsBox"`
}

// natsTLS is the chart's TLS block (config.nats.tls, config.cluster.tls).
type natsTLS struct {
	Enabled    bool   `json:"enabled"`
	SecretName string `json:"secretName"`
}

func loadNATSValues(t *testing.T) natsValues {
	t.Helper()
	var v natsValues
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/nats/values.yaml"), &v); err != nil {
		t.Fatalf("deploy/nats/values.yaml: %v", err)
	}
	return v
}

// cnpgCluster is the subset of postgresql.cnpg.io/v1 Cluster used by
// deploy/postgres/cluster.yaml (CloudNativePG has no Go module here).
type cnpgCluster struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy"`
		Storage               struct {
			Size         string `json:"size"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"storage"`
		WALStorage *struct {
			Size         string `json:"size"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"walStorage"`
		Bootstrap struct {
			InitDB *struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
			Recovery *struct {
				Source         string `json:"source"`
				Database       string `json:"database"`
				Owner          string `json:"owner"`
				RecoveryTarget *struct {
					TargetTime string `json:"targetTime"`
				} `json:"recoveryTarget"`
			} `json:"recovery"`
		} `json:"bootstrap"`
		ExternalClusters []struct {
			Name              string          `json:"name"`
			BarmanObjectStore cnpgObjectStore `json:"barmanObjectStore"`
		} `json:"externalClusters"`
		Backup *struct {
			RetentionPolicy   string          `json:"retentionPolicy"`
			BarmanObjectStore cnpgObjectStore `json:"barmanObjectStore"`
		} `json:"backup"`
		PostgreSQL struct {
			Parameters map[string]string `json:"parameters"`
		} `json:"postgresql"`
		Resources struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
		Affinity struct {
			EnablePodAntiAffinity bool   `json:"enablePodAntiAffinity"`
			TopologyKey           string `json:"topologyKey"`
			PodAntiAffinityType   string `json:"podAntiAffinityType"`
		} `json:"affinity"`
	} `json:"spec"`
}

// cnpgObjectStore is a barmanObjectStore section: where base backups and
// archived WAL go, or (in externalClusters) where a recovery reads them.
type cnpgObjectStore struct {
	DestinationPath string `json:"destinationPath"`
	EndpointURL     string `json:"endpointURL,omitempty"`
	ServerName      string `json:"serverName,omitempty"`
	S3Credentials   struct {
		AccessKeyID     cnpgSecretKey `json:"accessKeyId"`
		SecretAccessKey cnpgSecretKey `json:"secretAccessKey"`
	} `json:"s3Credentials"`
	WAL *struct {
		Compression string `json:"compression,omitempty"`
		MaxParallel int    `json:"maxParallel,omitempty"`
	} `json:"wal"`
	Data *struct {
		Compression string `json:"compression,omitempty"`
	} `json:"data"`
}

type cnpgSecretKey struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// cnpgScheduledBackup is the subset of postgresql.cnpg.io/v1 ScheduledBackup
// used by deploy/postgres/cluster.yaml.
type cnpgScheduledBackup struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Schedule             string `json:"schedule"`
		BackupOwnerReference string `json:"backupOwnerReference"`
		Immediate            bool   `json:"immediate"`
		Target               string `json:"target"`
		Method               string `json:"method"`
		Cluster              struct {
			Name string `json:"name"`
		} `json:"cluster"`
	} `json:"spec"`
}

func loadPostgres(t *testing.T) (cnpgCluster, *monitoringv1.PodMonitor) {
	c, pm, _ := loadPostgresAll(t)
	return c, pm
}

func loadPostgresAll(t *testing.T) (cnpgCluster, *monitoringv1.PodMonitor, []cnpgScheduledBackup) {
	t.Helper()
	var c cnpgCluster
	var pm *monitoringv1.PodMonitor
	var sbs []cnpgScheduledBackup
	for i, doc := range bytes.Split(readFile(t, "deploy/postgres/cluster.yaml"), []byte("\n---\n")) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("deploy/postgres/cluster.yaml document %d: %v", i, err)
		}
		switch head.Kind {
		case "Cluster":
			if err := yaml.UnmarshalStrict(doc, &c); err != nil {
				t.Fatalf("deploy/postgres/cluster.yaml Cluster: %v", err)
			}
		case "ScheduledBackup":
			var sb cnpgScheduledBackup
			if err := yaml.UnmarshalStrict(doc, &sb); err != nil {
				t.Fatalf("deploy/postgres/cluster.yaml ScheduledBackup: %v", err)
			}
			sbs = append(sbs, sb)
		case "PodMonitor":
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("deploy/postgres/cluster.yaml PodMonitor: %v", err)
			}
			pm = obj.(*monitoringv1.PodMonitor)
		default:
			t.Fatalf("deploy/postgres/cluster.yaml document %d: unexpected kind %q", i, head.Kind)
		}
	}
	return c, pm, sbs
}

func TestNATSValues(t *testing.T) {
	v := loadNATSValues(t)
	checks := []struct {
		rule string
		ok   bool
	}{
		{"fullnameOverride is nats (the Service B24HUB_NATS_URL names)", v.FullnameOverride == "nats"},
		{"3-node cluster", v.Config.Cluster.Enabled && v.Config.Cluster.Replicas == 3},
		{"JetStream on file storage", v.Config.JetStream.Enabled && v.Config.JetStream.FileStore.Enabled && !v.Config.JetStream.MemoryStore.Enabled},
		{"file storage on PVCs with a size", v.Config.JetStream.FileStore.PVC.Enabled && v.Config.JetStream.FileStore.PVC.Size != ""},
		{"monitor endpoint for the exporter", v.Config.Monitor.Enabled},
		{"exporter and PodMonitor (nats_* metrics for the alerts)", v.PromExporter.Enabled && v.PromExporter.PodMonitor.Enabled},
		{"PodDisruptionBudget", v.PodDisruptionBudget.Enabled},
		{"one server per node", v.PodTemplate.TopologySpreadConstraints["kubernetes.io/hostname"].WhenUnsatisfiable == "DoNotSchedule"},
		{"memory request and limit", v.Container.Merge.Resources.Requests["memory"] != "" && v.Container.Merge.Resources.Limits["memory"] != ""},
		{"nats-box for the runbooks' nats CLI", v.NatsBox.Enabled},
		{"the server the tests embed (go.mod's nats-server version), whose /healthz waits for replicas to catch up",
			v.Container.Image.Repository == "nats" && v.Container.Image.Tag == strings.TrimPrefix(embeddedNATSServer(t), "v")+"-alpine"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("deploy/nats/values.yaml: rule %q does not hold", c.rule)
		}
	}
}

func TestPostgresCluster(t *testing.T) {
	c, pm := loadPostgres(t)
	if c.APIVersion != "postgresql.cnpg.io/v1" || c.Kind != "Cluster" {
		t.Errorf("deploy/postgres/cluster.yaml: %s %s, want postgresql.cnpg.io/v1 Cluster", c.APIVersion, c.Kind)
	}
	if c.Metadata.Name != pgClusterName {
		t.Errorf("Cluster name %q; the NetworkPolicies and the app secret %s-app assume %q", c.Metadata.Name, pgClusterName, pgClusterName)
	}
	if c.Spec.Instances < 3 {
		t.Errorf("Cluster %s: %d instances, want >= 3", c.Metadata.Name, c.Spec.Instances)
	}
	if c.Spec.Bootstrap.InitDB == nil || c.Spec.Bootstrap.InitDB.Database == "" || c.Spec.Bootstrap.InitDB.Owner == "" {
		t.Errorf("Cluster %s: bootstrap.initdb needs database and owner (they make the -app secret)", c.Metadata.Name)
	}
	if !c.Spec.Affinity.EnablePodAntiAffinity {
		t.Errorf("Cluster %s: instances not spread over nodes", c.Metadata.Name)
	}
	if pm == nil || pm.Spec.Selector.MatchLabels["cnpg.io/cluster"] != c.Metadata.Name {
		t.Errorf("deploy/postgres/cluster.yaml: no PodMonitor selecting cnpg.io/cluster=%s", c.Metadata.Name)
	}
	// Every secretKeyRef to a -app secret must be the cluster's, key uri.
	for _, o := range overlays {
		r := render(t, o)
		for _, w := range r.workloads() {
			for _, ctr := range w.Spec.Containers {
				for _, e := range ctr.Env {
					if e.Name != "B24HUB_DATABASE_URL" {
						continue
					}
					ref := e.ValueFrom
					if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != c.Metadata.Name+"-app" || ref.SecretKeyRef.Key != "uri" {
						t.Errorf("%s %s: B24HUB_DATABASE_URL must come from secret %s-app key uri (CloudNativePG's app secret)", o, w, c.Metadata.Name)
					}
				}
			}
		}
	}
}

// TestNATSWiring: each overlay's B24HUB_NATS_URL names the chart's Service
// in the overlay's namespace, and prod provisions streams with one replica
// per NATS server.
func TestNATSWiring(t *testing.T) {
	v := loadNATSValues(t)
	for _, o := range overlays {
		r := render(t, o)
		cm := r.configMap("b24hub-common")
		if cm == nil {
			// Names carry a hash suffix; find by prefix.
			for _, c := range r.ConfigMaps {
				if strings.HasPrefix(c.Name, "b24hub-common-") {
					cm = c
				}
			}
		}
		if cm == nil {
			t.Fatalf("%s: no b24hub-common ConfigMap", o)
		}
		u, err := url.Parse(cm.Data["B24HUB_NATS_URL"])
		if err != nil {
			t.Fatalf("%s: B24HUB_NATS_URL: %v", o, err)
		}
		want := fmt.Sprintf("%s.%s.svc:4222", v.FullnameOverride, r.Namespace)
		// Production speaks TLS to the chart's servers (config.nats.tls).
		scheme := "nats"
		if o == "prod" && v.Config.NATS.TLS.Enabled {
			scheme = "tls"
		}
		if u.Scheme != scheme || u.Host != want {
			t.Errorf("%s: B24HUB_NATS_URL=%s, want %s://%s (the NATS chart release in the overlay's namespace)", o, u, scheme, want)
		}
		var replicas string
		for _, j := range r.Jobs {
			if j.Spec.Template.Labels["app.kubernetes.io/component"] != "topology" {
				continue
			}
			args := j.Spec.Template.Spec.Containers[0].Args
			for i, a := range args {
				if a == "--replicas" && i+1 < len(args) {
					replicas = args[i+1]
				}
			}
		}
		if o == "prod" && replicas != fmt.Sprint(v.Config.Cluster.Replicas) {
			t.Errorf("prod: topology Job --replicas %q, want %d (one per NATS server in deploy/nats/values.yaml)", replicas, v.Config.Cluster.Replicas)
		}
		if o == "dev" && replicas != "1" {
			t.Errorf("dev: topology Job --replicas %q, want 1 (a one-node dev NATS)", replicas)
		}
	}
}

// TestPostgresBackupAndRecovery checks that the Cluster archives WAL and
// base backups to object storage with credentials from a Secret, that a
// ScheduledBackup takes base backups of it, and that
// deploy/postgres/recovery.yaml restores from exactly that archive into a
// Cluster the services find under the same name, archiving elsewhere.
func TestPostgresBackupAndRecovery(t *testing.T) {
	c, _, sbs := loadPostgresAll(t)
	b := c.Spec.Backup
	if b == nil || b.BarmanObjectStore.DestinationPath == "" || b.RetentionPolicy == "" {
		t.Fatalf("deploy/postgres/cluster.yaml: Cluster %s has no spec.backup.barmanObjectStore with a destinationPath and a retentionPolicy", c.Metadata.Name)
	}
	creds := b.BarmanObjectStore.S3Credentials
	if creds.AccessKeyID.Name == "" || creds.AccessKeyID.Key == "" || creds.SecretAccessKey.Name == "" || creds.SecretAccessKey.Key == "" {
		t.Errorf("Cluster %s: backup credentials must come from a Secret (s3Credentials.accessKeyId and secretAccessKey)", c.Metadata.Name)
	}
	if b.BarmanObjectStore.WAL == nil || b.BarmanObjectStore.WAL.Compression == "" {
		t.Errorf("Cluster %s: WAL archive uncompressed", c.Metadata.Name)
	}
	scheduled := false
	for _, sb := range sbs {
		if sb.APIVersion != "postgresql.cnpg.io/v1" || sb.Spec.Cluster.Name != c.Metadata.Name {
			continue
		}
		if f := strings.Fields(sb.Spec.Schedule); len(f) != 6 {
			t.Errorf("ScheduledBackup %s: schedule %q, want CloudNativePG's six fields (seconds first)", sb.Metadata.Name, sb.Spec.Schedule)
		}
		if sb.Spec.Method != "" && sb.Spec.Method != "barmanObjectStore" {
			t.Errorf("ScheduledBackup %s: method %q, want barmanObjectStore (the Cluster's backup section)", sb.Metadata.Name, sb.Spec.Method)
		}
		scheduled = true
	}
	if !scheduled {
		t.Errorf("deploy/postgres/cluster.yaml: no ScheduledBackup of Cluster %s", c.Metadata.Name)
	}

	var r cnpgCluster
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/postgres/recovery.yaml"), &r); err != nil {
		t.Fatalf("deploy/postgres/recovery.yaml: %v", err)
	}
	if r.Kind != "Cluster" || r.Metadata.Name != c.Metadata.Name {
		t.Errorf("deploy/postgres/recovery.yaml: %s %s, want Cluster %s (the Service and the -app Secret the services read)", r.Kind, r.Metadata.Name, c.Metadata.Name)
	}
	rec := r.Spec.Bootstrap.Recovery
	if rec == nil || r.Spec.Bootstrap.InitDB != nil {
		t.Fatal("deploy/postgres/recovery.yaml: bootstrap must be recovery alone")
	}
	if rec.Database != c.Spec.Bootstrap.InitDB.Database || rec.Owner != c.Spec.Bootstrap.InitDB.Owner {
		t.Errorf("recovery: database/owner %s/%s, want %s/%s as the Cluster's initdb", rec.Database, rec.Owner, c.Spec.Bootstrap.InitDB.Database, c.Spec.Bootstrap.InitDB.Owner)
	}
	found := false
	for _, ec := range r.Spec.ExternalClusters {
		if ec.Name != rec.Source {
			continue
		}
		found = true
		src := ec.BarmanObjectStore
		if src.DestinationPath != b.BarmanObjectStore.DestinationPath || src.EndpointURL != b.BarmanObjectStore.EndpointURL {
			t.Errorf("recovery source %s reads %s %s, but the Cluster archives to %s %s", ec.Name, src.DestinationPath, src.EndpointURL,
				b.BarmanObjectStore.DestinationPath, b.BarmanObjectStore.EndpointURL)
		}
		archived := b.BarmanObjectStore.ServerName
		if archived == "" {
			archived = c.Metadata.Name
		}
		if src.ServerName != archived {
			t.Errorf("recovery source %s: serverName %q, want %q (the folder the Cluster archives into)", ec.Name, src.ServerName, archived)
		}
		if r.Spec.Backup != nil && r.Spec.Backup.BarmanObjectStore.DestinationPath == src.DestinationPath &&
			(r.Spec.Backup.BarmanObjectStore.ServerName == "" || r.Spec.Backup.BarmanObjectStore.ServerName == archived) {
			t.Errorf("the restored Cluster would archive into %s/%s, the archive it restores from; give it another serverName", src.DestinationPath, archived)
		}
	}
	if !found {
		t.Errorf("deploy/postgres/recovery.yaml: recovery source %q is not in externalClusters", rec.Source)
	}
	if r.Spec.Backup == nil {
		t.Error("deploy/postgres/recovery.yaml: the restored Cluster takes no backups")
	}
}

// embeddedNATSServer is the nats-server version libs/go.mod requires: the
// one every cluster test runs.
func embeddedNATSServer(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, "libs/go.mod")), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "github.com/nats-io/nats-server/v2" {
			return f[1]
		}
	}
	t.Fatal("libs/go.mod: no github.com/nats-io/nats-server/v2 requirement")
	return ""
}
