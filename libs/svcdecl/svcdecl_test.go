package svcdecl_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/svcdecl"
)

func valid() svcdecl.Service {
	return svcdecl.Service{
		Name: "contacts", Summary: "Mirrors contacts.", Role: svcdecl.RoleConsumer,
		Consumers: []svcdecl.Consumer{{Durable: "contacts", Stream: "B24_EVENTS", FilterSubjects: []string{"b24.events.*.ONCRMCONTACTADD"}}},
		Publishes: []string{"b24.outcomes.contacts.>", "b24.dead.contacts.>"},
		Buckets:   []svcdecl.Bucket{{Name: "B24_RATELIMIT", Access: svcdecl.ReadWrite}},
		Database:  &svcdecl.Database{Schema: "contacts", Migrations: fstest.MapFS{"001_init.sql": {Data: []byte("select 1")}}},
		Ports:     []svcdecl.Port{{Name: "http", Port: 8080, Exposure: svcdecl.Public, Env: "B24HUB_CONTACTS_ADDR"}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*svcdecl.Service)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*svcdecl.Service) {}, ""},
		{"name not a DNS label", func(s *svcdecl.Service) { s.Name = "Deal_Sync" }, "DNS label"},
		{"no summary", func(s *svcdecl.Service) { s.Summary = " " }, "summary is required"},
		{"unknown role", func(s *svcdecl.Service) { s.Role = "worker" }, `role "worker"`},
		{"durable with a dot", func(s *svcdecl.Service) { s.Consumers[0].Durable = "a.b" }, "durable"},
		{"durable twice", func(s *svcdecl.Service) { s.Consumers = append(s.Consumers, s.Consumers[0]) }, "declared twice"},
		{"consumer without stream", func(s *svcdecl.Service) { s.Consumers[0].Stream = "" }, "stream is required"},
		{"consumer without filter", func(s *svcdecl.Service) { s.Consumers[0].FilterSubjects = nil }, "filter subject is required"},
		{"bad filter", func(s *svcdecl.Service) { s.Consumers[0].FilterSubjects = []string{"b24..x"} }, "not a NATS subject"},
		{"bad publish", func(s *svcdecl.Service) { s.Publishes = []string{"b24.>.x"} }, "publishes"},
		{"bad bucket access", func(s *svcdecl.Service) { s.Buckets[0].Access = "write" }, "access"},
		{"schema upper case", func(s *svcdecl.Service) { s.Database.Schema = "Contacts" }, "schema"},
		{"no migrations", func(s *svcdecl.Service) { s.Database.Migrations = fstest.MapFS{} }, "no *.sql"},
		{"admin port taken", func(s *svcdecl.Service) { s.Ports[0].Port = 9090 }, "taken"},
		{"port name admin", func(s *svcdecl.Service) { s.Ports[0].Name = "admin" }, "taken"},
		{"port exposure", func(s *svcdecl.Service) { s.Ports[0].Exposure = "world" }, "exposure"},
		{"port env prefix", func(s *svcdecl.Service) { s.Ports[0].Env = "ADDR" }, "B24HUB_"},
		{"replicas", func(s *svcdecl.Service) { s.Scaling = svcdecl.Scaling{MinReplicas: 4, MaxReplicas: 2} }, "min replicas"},
		{"memory", func(s *svcdecl.Service) { s.MemoryLimit = "1Gi" }, "memory limit"},
		{"env from the pod", func(s *svcdecl.Service) {
			s.Env = []svcdecl.Env{{Name: "B24HUB_INSTANCE_ID", FieldPath: "metadata.name"}}
		}, ""},
		{"env name", func(s *svcdecl.Service) { s.Env = []svcdecl.Env{{Name: "LOG", Value: "x"}} }, "B24HUB_ variable"},
		{"env without value", func(s *svcdecl.Service) { s.Env = []svcdecl.Env{{Name: "B24HUB_X"}} }, "exactly one"},
		{"env with both", func(s *svcdecl.Service) {
			s.Env = []svcdecl.Env{{Name: "B24HUB_X", Value: "1", FieldPath: "metadata.name"}}
		}, "exactly one"},
		{"secret file", func(s *svcdecl.Service) {
			s.SecretFiles = []svcdecl.SecretFile{{Env: "B24HUB_TOKEN_FILE", Secret: "b24hub-token", Key: "token"}}
		}, ""},
		{"secret file env", func(s *svcdecl.Service) {
			s.SecretFiles = []svcdecl.SecretFile{{Env: "B24HUB_TOKEN", Secret: "b24hub-token", Key: "token"}}
		}, "ending in _FILE"},
		{"secret name", func(s *svcdecl.Service) {
			s.SecretFiles = []svcdecl.SecretFile{{Env: "B24HUB_TOKEN_FILE", Secret: "token", Key: "token"}}
		}, "starting with b24hub-"},
		{"secret key", func(s *svcdecl.Service) {
			s.SecretFiles = []svcdecl.SecretFile{{Env: "B24HUB_TOKEN_FILE", Secret: "b24hub-token", Key: "a/b"}}
		}, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			s.Consumers = append([]svcdecl.Consumer(nil), s.Consumers...)
			d := *s.Database
			s.Database = &d
			tt.change(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCatalogValidate(t *testing.T) {
	a, b := valid(), valid()
	b.Name = "contacts-2"
	err := svcdecl.Catalog{a, b}.Validate()
	if err == nil || !strings.Contains(err.Error(), "declared by") || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("Validate = %v, want the shared durable and the shared schema named", err)
	}
	b.Consumers = []svcdecl.Consumer{{Durable: "contacts-2", Stream: "B24_EVENTS", FilterSubjects: []string{"b24.events.*.X"}}}
	b.Database = nil
	if err := (svcdecl.Catalog{a, b}).Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if _, ok := (svcdecl.Catalog{a, b}).Lookup("contacts-2"); !ok {
		t.Fatal("Lookup did not find contacts-2")
	}
}

func TestDefaults(t *testing.T) {
	s := svcdecl.Service{Role: svcdecl.RoleControl}.WithDefaults()
	if !s.Scaling.Singleton || s.Scaling.MinReplicas != 2 || s.MemoryLimit != "256Mi" {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"b24.events.*.*", "b24.events.m1.ONCRMDEALADD", true},
		{"b24.events.*.*", "b24.events.m1", false},
		{"b24.events.*.*", "b24.events.m1.X.Y", false},
		{"b24.dead.tasks.>", "b24.dead.tasks.m1.ONTASKADD", true},
		{"b24.dead.tasks.>", "b24.dead.tasks", false},
		{"b24.dead.tasks.>", "b24.dead.telephony.m1.X", false},
		{">", "anything.at.all", true},
		{"b24.control.install", "b24.control.install", true},
		{"b24.control.install", "b24.control.installx", false},
		{"b24.control.install", "b24.control", false},
	}
	for _, tt := range tests {
		if got := svcdecl.SubjectMatches(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
	s := valid()
	if !s.MayPublish("b24.outcomes.contacts.m1") || s.MayPublish("b24.changes.contact.m1.1") {
		t.Fatalf("MayPublish disagrees with Publishes %q", s.Publishes)
	}
}
