package httpapi

import (
	"net/http"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/directory"
)

// pathSlug reads a slug path parameter; Invalid when malformed.
func pathSlug(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if !hermes.ValidSlug(v) {
		return "", hermes.Errorf(hermes.Invalid, "%s %q is malformed: expected 1-%d lowercase letters, digits or inner hyphens", name, v, hermes.MaxSlugLen)
	}
	return v, nil
}

// matchID makes the body's id agree with the path: absent means the path's.
func matchID(v *hermes.ValidationError, field string, body *string, path string) {
	if *body == "" {
		*body = path
	} else if *body != path {
		v.Add(field, "%q does not match the path's %q", *body, path)
	}
}

func (s *Server) handleCreateClient(w http.ResponseWriter, r *http.Request) error {
	var t directory.ClientTree
	if err := decodeJSON(w, r, &t, maxAdminBodyBytes); err != nil {
		return err
	}
	t.Normalize()
	var v hermes.ValidationError
	t.Validate(&v, "")
	if err := v.Err(); err != nil {
		return err
	}
	if err := directory.Create(r.Context(), s.Store, &t, s.Clock.Now()); err != nil {
		return err
	}
	w.Header().Set("Location", s.BasePath+"/api/clients/"+t.ID)
	return s.writeClientTree(w, r, http.StatusCreated, t.ID)
}

// writeClientTree answers with the stored client and its projects and users.
func (s *Server) writeClientTree(w http.ResponseWriter, r *http.Request, status int, id string) error {
	c, err := s.Store.GetClient(r.Context(), id)
	if err != nil {
		return err
	}
	ps, err := s.Store.ListProjects(r.Context(), id)
	if err != nil {
		return err
	}
	us, err := s.Store.ListUsers(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, status, clientTree{Client: *c, Projects: ps, Users: us})
	return nil
}

// clientTree is the response shape of a client: always with both lists.
type clientTree struct {
	hermes.Client
	Projects []*hermes.Project `json:"projects"`
	Users    []*hermes.User    `json:"users"`
}

func (s *Server) handleListClients(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.Store.ListClients(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}

func (s *Server) handleGetClient(w http.ResponseWriter, r *http.Request) error {
	id, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	return s.writeClientTree(w, r, http.StatusOK, id)
}

func (s *Server) handlePutClient(w http.ResponseWriter, r *http.Request) error {
	id, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	var c hermes.Client
	if err := decodeJSON(w, r, &c, maxBodyBytes); err != nil {
		return err
	}
	var v hermes.ValidationError
	matchID(&v, "id", &c.ID, id)
	c.Validate(&v, "")
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.Store.UpdateClient(r.Context(), &c, s.Clock.Now()); err != nil {
		return err
	}
	return s.writeClientTree(w, r, http.StatusOK, id)
}

func (s *Server) handleDeleteClient(w http.ResponseWriter, r *http.Request) error {
	id, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	if err := s.Store.DeleteClient(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// project handlers

// decodeProject reads and validates a project body for the client in the
// path (and the project in the path, for PUT).
func decodeProject(w http.ResponseWriter, r *http.Request, clientID, projectID string) (*hermes.Project, error) {
	var p hermes.Project
	if err := decodeJSON(w, r, &p, maxBodyBytes); err != nil {
		return nil, err
	}
	p.Normalize()
	var v hermes.ValidationError
	matchID(&v, "clientId", &p.ClientID, clientID)
	if projectID != "" {
		matchID(&v, "id", &p.ID, projectID)
	}
	p.Validate(&v, "")
	return &p, v.Err()
}

func (s *Server) handleCreateProject(w http.ResponseWriter, r *http.Request) error {
	clientID, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	p, err := decodeProject(w, r, clientID, "")
	if err != nil {
		return err
	}
	if err := s.Store.CreateProject(r.Context(), p, s.Clock.Now()); err != nil {
		return err
	}
	w.Header().Set("Location", s.BasePath+"/api/clients/"+clientID+"/projects/"+p.ID)
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Server) handleListProjects(w http.ResponseWriter, r *http.Request) error {
	clientID, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	if _, err := s.Store.GetClient(r.Context(), clientID); err != nil {
		return err
	}
	ps, err := s.Store.ListProjects(r.Context(), clientID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ps)
	return nil
}

func (s *Server) projectPath(r *http.Request) (clientID, projectID string, err error) {
	if clientID, err = pathSlug(r, "clientId"); err != nil {
		return "", "", err
	}
	projectID, err = pathSlug(r, "projectId")
	return clientID, projectID, err
}

func (s *Server) handleGetProject(w http.ResponseWriter, r *http.Request) error {
	clientID, projectID, err := s.projectPath(r)
	if err != nil {
		return err
	}
	p, err := s.Store.GetProject(r.Context(), clientID, projectID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) handlePutProject(w http.ResponseWriter, r *http.Request) error {
	clientID, projectID, err := s.projectPath(r)
	if err != nil {
		return err
	}
	p, err := decodeProject(w, r, clientID, projectID)
	if err != nil {
		return err
	}
	if err := s.Store.UpdateProject(r.Context(), p, s.Clock.Now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) handleDeleteProject(w http.ResponseWriter, r *http.Request) error {
	clientID, projectID, err := s.projectPath(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteProject(r.Context(), clientID, projectID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// user handlers

func decodeUser(w http.ResponseWriter, r *http.Request, clientID, userID string) (*hermes.User, error) {
	var u hermes.User
	if err := decodeJSON(w, r, &u, maxBodyBytes); err != nil {
		return nil, err
	}
	u.Normalize()
	var v hermes.ValidationError
	matchID(&v, "clientId", &u.ClientID, clientID)
	if userID != "" {
		matchID(&v, "id", &u.ID, userID)
	}
	u.Validate(&v, "")
	return &u, v.Err()
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	clientID, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	u, err := decodeUser(w, r, clientID, "")
	if err != nil {
		return err
	}
	if err := s.Store.CreateUser(r.Context(), u, s.Clock.Now()); err != nil {
		return err
	}
	w.Header().Set("Location", s.BasePath+"/api/clients/"+clientID+"/users/"+u.ID)
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) error {
	clientID, err := pathSlug(r, "clientId")
	if err != nil {
		return err
	}
	if _, err := s.Store.GetClient(r.Context(), clientID); err != nil {
		return err
	}
	us, err := s.Store.ListUsers(r.Context(), clientID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, us)
	return nil
}

func (s *Server) userPath(r *http.Request) (clientID, userID string, err error) {
	if clientID, err = pathSlug(r, "clientId"); err != nil {
		return "", "", err
	}
	userID, err = pathSlug(r, "userId")
	return clientID, userID, err
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) error {
	clientID, userID, err := s.userPath(r)
	if err != nil {
		return err
	}
	u, err := s.Store.GetUser(r.Context(), clientID, userID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) handlePutUser(w http.ResponseWriter, r *http.Request) error {
	clientID, userID, err := s.userPath(r)
	if err != nil {
		return err
	}
	u, err := decodeUser(w, r, clientID, userID)
	if err != nil {
		return err
	}
	if err := s.Store.UpdateUser(r.Context(), u, s.Clock.Now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) error {
	clientID, userID, err := s.userPath(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteUser(r.Context(), clientID, userID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
