-- Tasks left waiting for input are pruned after the retention, like finished ones (issue 16).
CREATE INDEX tasks_waiting ON tasks (updated_at) WHERE state = 'input_required';
